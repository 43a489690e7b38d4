from jaxdl.apps.compare.app import main

main()
