// libcakes.so, the umbrella library: it holds no code of its own and links
// every area's library (CMakeLists.txt), so that one library serves C++
// programs and Python's torch.ops.load_library alike.
