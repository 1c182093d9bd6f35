"""Using a trained model: translating (`translate`; `resume`: continuing an interrupted output),
scoring given pairs (`scoring`), exporting a SavedModel (`export`), tuning decode settings on
dev (`tuning`), averaging weights (`averaging`) and looking at embeddings (`embeddings`).

May import everything below it: `nmt.storage`, `nmt.search`, `nmt.evaluation`, `nmt.data`,
`nmt.config`, `nmt.files`, `nmt.system`, `nmt.errors`, `vocab`.
"""
