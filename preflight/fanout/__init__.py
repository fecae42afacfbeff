"""Checking a batch on a Dask cluster (`check --dask`): workers probe, this process judges.

`task` is what runs on a worker (it imports no Dask); `cluster` connects and fans out, and is the
only module that imports `distributed`, on first use of `--dask`.
"""
