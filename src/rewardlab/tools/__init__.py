"""Tools a reward model may call before it judges (Themis, tool-augmented reward modelling): a calculator,
confined code execution, lookup in local documents."""
