"""The compute backend (numpy or torch, CPU or CUDA) and its tile kernels: the one place that
may import torch for analysis, lazily, so that measures and studies never need it."""
