^now=1[0-9]{12} random=[0-9a-f]{32}$
