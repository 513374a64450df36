import torch

# Two cores are shared by the whole machine; one thread each keeps the suite predictable.
torch.set_num_threads(1)
