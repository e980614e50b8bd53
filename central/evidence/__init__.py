"""The center's evidence store: resumable uploads from units, verification of the signed
chain and every segment's hash, an index to search, downloads."""
