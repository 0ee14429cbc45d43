"""Training machinery of the front end: compile/fit/evaluate/predict and the train-step graph.

  trainer.py       TrainerMixin (Model inherits it): compile, fit, evaluate, predict, *_on_batch,
                   train_step/test_step overrides (run eagerly with GradientTape), train_step_graph
  compile_utils.py compile()'s arguments resolved per output (losses, weights, metrics, trackers)
  train_step.py    the train/test-step ir.Graphs: forward, loss + regularization, backprop, update
  runner.py        runs a step graph on one batch and writes variable/slot updates back
  backend.py       make_executor(graph, backend): the one place graphs are executed ("native"|"reference")
  emitter.py       write a formula once, emit it as IR (GraphEmitter) or run it eagerly (NumPy, KTensor)
  data.py          standardize/check x, y, sample_weight; validation split; batching; class weights
  callback_base.py Callback and CallbackList; history.py History; progbar.py Keras-style progress
"""
