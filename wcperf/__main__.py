from wcperf.cli.app import main

main()
