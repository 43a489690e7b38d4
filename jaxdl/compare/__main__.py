from jaxdl.compare.app import main

main()
