import numpy as np
import torch

from deepuad.autoencoder import Autoencoder, cosine_error, encode_and_score


def test_cosine_error_values():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    x_hat = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(cosine_error(x, x_hat), torch.tensor([0.0, 1.0, 2.0, 1.0]), atol=1e-6)


def test_decoder_mirrors_encoder():
    model = Autoencoder(118, (60, 30, 10), "tanh")
    enc = [m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)]
    dec = [m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert enc == [60, 30, 10] and dec == [30, 60, 118]
    assert isinstance(model.encoder[1], torch.nn.Tanh) and isinstance(model.encoder[-1], torch.nn.Linear)


def test_encode_and_score_batches_agree_with_one_pass():
    torch.manual_seed(0)
    model = Autoencoder(5, (4, 2), "relu")
    X = np.random.default_rng(0).normal(size=(103, 5)).astype(np.float32)
    codes, errors = encode_and_score(model, X, batch_size=10)
    with torch.no_grad():
        expected = cosine_error(torch.from_numpy(X), model(torch.from_numpy(X))).numpy()
    assert codes.shape == (103, 2)
    np.testing.assert_allclose(errors, expected, rtol=1e-5, atol=1e-6)
