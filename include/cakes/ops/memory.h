// Process memory policy for training and benchmarking on CPU.
#pragma once

namespace cakes::ops {

// Makes the C library keep memory the process frees for reuse instead of
// returning it to the operating system: no allocation, however large, is
// served by its own mmap, and the heap is never trimmed. A training step
// allocates and frees a gigabyte of activations and gradients; returned to
// the OS, every page of them faults and is zeroed again on first touch in
// the next step (measured on I3D ResNet-50 at 8x224^2, one thread: 1.23 s of
// 3.75 s outside the convolutions, 0.49 s with this policy; inference 1.03
// -> 0.86 s). The price: the process keeps its peak heap. Process-wide; the
// cakes CLI calls it at start-up, Python processes can get the same with
// GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=17179869184.
// Returns false when the C library refused (a non-glibc libc).
bool retain_freed_memory();

} // namespace cakes::ops
