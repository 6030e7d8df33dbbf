// Compiled only by the layering tests (tests/CMakeLists.txt): as part of an
// area's target, including CAKES_PROBE_HEADER must compile when the header's
// area is a declared dependency and fail when it is not.
#include CAKES_PROBE_HEADER
