"""Reading and writing files: text checked line by line with errors naming file and line,
atomic writes, output checks (`textio`).

May import: `nmt.errors`. No TensorFlow.
"""
