"""Rails: a typed rule language checked by Z3 (installed as ``workbench.rails``)."""
