"""kcompile.compiler"""
