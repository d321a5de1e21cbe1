complete --keep-order --exclusive --command ddm --arguments "(COMPLETE=fish ddm -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
