/* A `python` command built from libpython3.11 the way the fluxlit binary embeds it: linked
 * against the static libpython3.11.a (fluxlit's default) or the shared libpython3.11.so (its
 * fallback). Debian's /usr/bin/python3.11 comes from the same sources, but its build inlined
 * functions across source files (PyObject_Malloc and _Py_dict_lookup among them) that the
 * archive keeps as calls. Running ceiling.py under each separates the cost of the interpreter's
 * build from the cost of FluxLit's bridge. */
#include <Python.h>

int main(int argc, char** argv) { return Py_BytesMain(argc, argv); }
