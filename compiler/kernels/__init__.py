"""Kernel emitters: functions added to an llvmlite module for matmul, convolution and pooling."""
