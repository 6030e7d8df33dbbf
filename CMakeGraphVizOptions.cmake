# What `cmake --graphviz` draws for docs/ARCHITECTURE.md (make architecture):
# the areas' libraries and their declared dependencies, nothing else.
set(GRAPHVIZ_GRAPH_NAME "cakes")
set(GRAPHVIZ_EXTERNAL_LIBS FALSE)
set(GRAPHVIZ_EXECUTABLES FALSE)
set(GRAPHVIZ_OBJECT_LIBS FALSE)
set(GRAPHVIZ_GENERATE_PER_TARGET FALSE)
set(GRAPHVIZ_GENERATE_DEPENDERS FALSE)
# The umbrella libcakes.so links every area; it would hide the layering.
set(GRAPHVIZ_IGNORE_TARGETS "^cakes$")
