"""UpdatePruningStep (advances pruning_step, updates masks on schedule) and PruningSummaries (a log)."""
from __future__ import annotations

import json
import os

from ..training.callback_base import Callback
from .masks import shared_threshold, sparsity_of
from .wrapper import collect_prunable_layers


class UpdatePruningStep(Callback):
    """Required when fitting a pruned model, as in TF-MOT.

    Before each training batch every wrapper's pruning_step advances by one (the first batch is
    step 1) and, on the schedule's pruning steps, its masks are recomputed from the weights; the
    compiled step then reads the new masks. At each epoch end the weights are re-masked.
    """

    def __init__(self):
        super().__init__()
        self.prunable_layers = []
        self.groups = {}                  # threshold_group -> the wrappers sharing one threshold

    def on_train_begin(self, logs=None):
        self.prunable_layers = collect_prunable_layers(self.model)
        for layer in self.prunable_layers:
            if int(layer.pruning_step.numpy()) == -1:
                layer.pruning_step.assign(0)
        self.groups = threshold_groups(self.prunable_layers)

    def on_train_batch_begin(self, batch, logs=None):
        for layer in self.prunable_layers:
            step = int(layer.pruning_step.numpy()) + 1
            layer.pruning_step.assign(step)
            if layer.threshold_group is None and layer.should_update_masks(step):
                layer.update_masks(step)
        for layers in self.groups.values():
            step = int(layers[0].pruning_step.numpy())
            if layers[0].should_update_masks(step):
                sparsity = layers[0].pruning_schedule(step)[1]
                threshold = shared_threshold([s for layer in layers for s in layer.decision_scores()], sparsity)
                for layer in layers:
                    layer.apply_threshold(threshold)

    def on_epoch_end(self, epoch, logs=None):
        for layer in self.prunable_layers:
            layer.apply_masks()


def threshold_groups(layers) -> dict:
    """{group: wrappers} for the wrappers that share a threshold; they must share schedule and step."""
    groups = {}
    for layer in layers:
        if layer.threshold_group is not None:
            groups.setdefault(layer.threshold_group, []).append(layer)
    for name, members in groups.items():
        first = members[0]
        for other in members[1:]:
            if other.pruning_schedule.get_config() != first.pruning_schedule.get_config():
                raise ValueError(f"UpdatePruningStep: layers '{first.layer.name}' and '{other.layer.name}' share the "
                                 f"threshold group {name!r} but have different schedules "
                                 f"({first.pruning_schedule.get_config()} vs {other.pruning_schedule.get_config()})")
            if int(other.pruning_step.numpy()) != int(first.pruning_step.numpy()):
                raise ValueError(f"UpdatePruningStep: layers '{first.layer.name}' and '{other.layer.name}' share the "
                                 f"threshold group {name!r} but are at pruning steps {int(first.pruning_step.numpy())} "
                                 f"and {int(other.pruning_step.numpy())}")
    return groups


class PruningSummaries(Callback):
    """Logs every pruned weight's sparsity and threshold at each epoch start (as TF-MOT's summaries).

    Writes `<log_dir>/pruning_summaries.jsonl`: one JSON object per line,
    {"epoch", "iteration", "<mask path>/sparsity": float, "<threshold path>/threshold": float, ...}.
    """

    def __init__(self, log_dir, update_freq="epoch"):
        super().__init__()
        if not isinstance(log_dir, str) or not log_dir:
            raise ValueError(f"PruningSummaries: log_dir must be a non-empty string, got {log_dir!r}")
        if update_freq != "epoch":
            raise ValueError(f"PruningSummaries: only update_freq='epoch' is supported, got {update_freq!r}")
        self.log_dir = log_dir
        self.path = os.path.join(log_dir, "pruning_summaries.jsonl")

    def on_epoch_begin(self, epoch, logs=None):
        self._write(epoch)

    def on_train_end(self, logs=None):
        self._write("end")

    def _write(self, epoch):
        record = {"epoch": epoch, "iteration": _iterations(self.model)}
        for layer in collect_prunable_layers(self.model):
            for _, mask, threshold in layer.pruning_vars:
                record[f"{mask.path}/sparsity"] = sparsity_of(mask.numpy())
                record[f"{threshold.path}/threshold"] = float(threshold.numpy())
        os.makedirs(self.log_dir, exist_ok=True)
        with open(self.path, "a") as f:          # appended line by line, as a TensorBoard event log
            f.write(json.dumps(record) + "\n")


def read_summaries(log_dir) -> list:
    """The records PruningSummaries wrote to log_dir, in order."""
    with open(os.path.join(log_dir, "pruning_summaries.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _iterations(model) -> int:
    compiled = getattr(model, "_compiled", None)
    opt = getattr(compiled, "optimizer", None)
    return int(opt.iterations.numpy()) if opt is not None else 0
