"""The pipeline graph, its expansion into work items, the runner and the result store."""
