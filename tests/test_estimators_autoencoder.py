import numpy as np
import torch

from deepuad.estimators.autoencoder import Autoencoder, cosine_error, encode_and_score


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


def test_cosine_error_of_short_vectors_is_not_floored():
    # rows with norms far below 1: the eps guard (1e-8) must not change their direction's score
    x = torch.tensor([[0.01, 0.0], [0.01, 0.0]])
    x_hat = torch.tensor([[0.02, 0.0], [0.0, 0.01]])
    assert torch.allclose(cosine_error(x, x_hat), torch.tensor([0.0, 1.0]), atol=1e-6)


def test_hidden_layers_have_the_activation_and_the_code_and_output_are_linear():
    model = Autoencoder(5, (4, 3, 2), "relu")
    kinds = [type(m).__name__ for m in model.encoder]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [type(m).__name__ for m in model.decoder] == kinds
    assert [(m.in_features, m.out_features) for m in model.decoder if isinstance(m, torch.nn.Linear)] == [(2, 3), (3, 4), (4, 5)]


def test_architecture_limits():
    Autoencoder(1, (1,), "tanh")  # one feature, one code unit: the smallest valid network
    for n_features, layers in ((0, (2,)), (3, ()), (3, (2, 0))):
        try:
            Autoencoder(n_features, layers, "tanh")
        except ValueError as error:
            assert f"invalid architecture: {n_features} inputs, layers {list(layers)}" in str(error)
        else:
            raise AssertionError(f"{n_features} inputs, layers {layers} accepted")
    try:
        Autoencoder(3, (2,), "sigmoid")
    except ValueError as error:
        assert "activation must be one of tanh, relu, got 'sigmoid'" in str(error)
    else:
        raise AssertionError("unknown activation accepted")
