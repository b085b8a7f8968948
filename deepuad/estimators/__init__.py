"""The algorithms, as scikit-learn/PyOD-style estimators with no file or terminal I/O.

- ``detector``: ``DeepUAD``, the paper's Algorithm 1
- ``base``: the contract every detector follows (``BaseDetector``)
- ``params``: what several layers share, declared once: DeepUAD's, the baselines' and the
  clustering methods' defaults, the contamination range (standard library only: the CLI reads it)
- ``baselines``: Isolation Forest, OC-SVM, a plain autoencoder, and ``dagmm``: DAGMM
- ``clustering``, ``distribution``: initial clustering (GMM, k-means, HDBSCAN, distribution clustering)
- ``selection``: the low-variance cluster selection C(X, p), and ``initial_selection`` C(X, p0)
- ``rules``: the rules that choose the training set, by name (``init_by``, ``reselect_by``)
- ``cleaning``: the ``trim`` rule's fence and outlyingness
- ``autoencoder``: the network, its training steps and its reconstruction errors
- ``parts``: the parts of DeepUAD's score, by name, each declaring the arrays it stores
- ``scorer``: the fitted score the parts make (``Scorer``), as arrays and back
- ``scoring``: the forest, k-NN distances, robust scale and contamination estimate the parts use
- ``metrics``: AUROC, AUPRC, F1
- ``distributed``: the process group a fit runs in (one process = a world of size one)
"""
