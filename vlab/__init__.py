"""vlab: throwaway network labs for testing the VM -> tap -> bridge -> uplink path."""
