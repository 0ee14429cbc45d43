"""TrainerMixin: compile/fit/evaluate/predict for Model (being written)."""


class TrainerMixin:
    """Keras training API mixed into Model."""
