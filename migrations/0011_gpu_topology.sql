-- What the CUDA runtime says of a GPU beyond its model: where it sits (PCI bus id) and which of the
-- machine's other GPUs it reaches directly (peer access: NVLink or PCIe P2P), by index. A CPU
-- device has neither.
ALTER TABLE gpus
  ADD COLUMN pci_bus_id text NOT NULL DEFAULT '',
  ADD COLUMN peer_indexes int[] NOT NULL DEFAULT '{}';
