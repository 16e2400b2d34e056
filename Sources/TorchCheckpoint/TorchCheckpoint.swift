// Placeholder: the torch.save reader lands in TorchCheckpoint.swift.
