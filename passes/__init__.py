"""kcompile.passes"""
