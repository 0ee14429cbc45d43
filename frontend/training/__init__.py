"""Training machinery of the front end: compile/fit/evaluate/predict, the train-step graph."""
