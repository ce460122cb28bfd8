"""Packed data sets (HDF5) read as class-indexed splits for the task sampler."""
