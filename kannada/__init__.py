"""kannada: recognise handwritten Kannada digits (Kannada-MNIST) with minicnn.

The training job is `python -m kannada.train`; the demo is `python -m kannada.demo`.
"""
