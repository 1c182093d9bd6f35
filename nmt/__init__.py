"""nmt: recurrent neural machine translation on TensorFlow + Keras 3.

Importing this package must stay cheap: TensorFlow is imported only by the modules that need it.
"""

__version__ = "0.1.0"
