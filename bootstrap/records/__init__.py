"""The records beside every image: lock, SBOMs, provenance, build.json, and what reads them back (inspect)."""
