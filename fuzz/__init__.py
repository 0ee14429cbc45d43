"""Coverage-guided fuzzing of kcompile's loaders with atheris (libFuzzer for Python).

Targets (one module each in fuzz/targets/): load_model (the saved-model archive), artifact
(runtime.load: manifest and weights), ir_text (ir.text.parse_graph), run_inputs (`kcompile run`
input files). Each treats a clear project error (a ValueError subclass, CLIError or
NativeRuntimeError with a message) as the right answer and anything else (another exception type,
a crash, a hang, MemoryError) as a finding.

    python -m fuzz.run --target load_model --cpu-minutes 10      # a long run, CPU time reported
    python -m fuzz.run --target ir_text --runs 500               # a short one (the tests do this)

Seeds are generated from the current formats by fuzz/seeds (so they never go stale); the
corpus a run grows lives in its --workdir (default fuzz/work, ignored by git).
"""
