"""kcompile.frontend"""
