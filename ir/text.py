"""Textual IR (placeholder until the printer/parser lands)."""


def print_graph(graph):
    raise NotImplementedError


def parse_graph(text):
    raise NotImplementedError
