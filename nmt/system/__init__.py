"""The process around the model: starting TensorFlow (`runtime`), signals (`termination`),
numeric precision (`precision`), tf.distribute strategies (`distribute`) and where TensorFlow's
time goes (`profiling`).

May import: `nmt.errors`. TensorFlow only inside functions, so importing these stays cheap.
"""
