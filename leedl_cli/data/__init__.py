"""LightningDataModules: real loaders (local folder first, canonical download otherwise) and small synthetic sets for tests."""
