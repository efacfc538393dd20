"""Files the demo loads and the README's worked example uses: Verra VCU exports (CSV, in the
columns Verra's public registry writes) for the demo's mirrored batches. The serials and the
names in them are illustrative."""
