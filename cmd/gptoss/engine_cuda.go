package main

// The CUDA engine registers itself (runtime/cuda); it reports why it cannot
// run (no driver, no GPU, a build without the kernels) and the CPU engine
// runs instead.
import _ "github.com/gptoss/gptoss/runtime/cuda"
