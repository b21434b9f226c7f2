"""One module per pipeline stage; each ``main()`` reads params.yaml, calls zsseg and writes its outputs."""
