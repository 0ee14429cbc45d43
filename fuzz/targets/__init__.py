"""The fuzz targets by name. Each module gives MAX_LEN, seeds(fixtures) -> list of inputs, and
setup(fixtures) -> one_input(data: bytes), the function libFuzzer calls once per input."""
TARGETS = {
    "load_model": "fuzz.targets.load_model",
    "artifact": "fuzz.targets.artifact",
    "ir_text": "fuzz.targets.ir_text",
    "run_inputs": "fuzz.targets.run_inputs",
}
