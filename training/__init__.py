"""Training: archive snapshot -> LoRA fine-tuning -> evaluation -> versioned model folder.

The API the rest of the project uses::

    from training.args import TrainingArgs
    from training.pipeline import run_training, TrainResult

    result = run_training(Settings(), TrainingArgs(), source="archive")
    result.model_dir, result.promoted, result.metrics

``python -m training`` is the command line (``make train``).
"""
