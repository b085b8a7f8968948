"""The algorithms, as scikit-learn/PyOD-style estimators with no file or terminal I/O.

- ``detector``: ``DeepUAD``, the paper's Algorithm 1
- ``base``: the contract every detector follows (``BaseDetector``)
- ``params``: what several layers share, declared once: DeepUAD's, the baselines' and the
  clustering methods' defaults, the contamination range (standard library only: the CLI reads it)
- ``baselines``: Isolation Forest, OC-SVM, a plain autoencoder, and ``dagmm``: DAGMM
- ``clustering``, ``distribution``: initial clustering (GMM, k-means, HDBSCAN, distribution clustering)
- ``selection``: the low-variance cluster selection C(X, p), and ``initial_selection`` C(X, p0)
- ``autoencoder``: the network and its reconstruction errors
- ``scoring``: the anomaly score of a fitted DeepUAD
- ``metrics``: AUROC, AUPRC, F1
- ``distributed``: the process group a fit runs in (one process = a world of size one)
"""
