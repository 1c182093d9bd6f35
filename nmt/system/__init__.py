"""The process around the model: starting TensorFlow (`runtime`), signals (`termination`),
numeric precision (`precision`) and tf.distribute strategies (`distribute`).

May import: `nmt.errors`. TensorFlow only inside functions, so importing these stays cheap.
"""
