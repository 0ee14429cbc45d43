"""kcompile.runtime: executes graphs. Never imports kcompile.compiler or kcompile.frontend."""
