/* A `python` command linked against the shared libpython3.11.so, as the fluxlit binary is.
 * Debian's /usr/bin/python3.11 links the interpreter statically, so running ceiling.py under
 * both separates the cost of the shared library from the cost of FluxLit's bridge. */
#include <Python.h>

int main(int argc, char** argv) { return Py_BytesMain(argc, argv); }
