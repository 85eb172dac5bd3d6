"""Engine layer: losses, metrics, inference, evaluation, the episodic protocol, training and run folders."""
