package solver

import "strings"

// UntieGates converts a model trained before the LSTM fix of 2026-11-24.
// Until then gorgonia merged the graph nodes of the four gate slices (it
// hashes slice bounds truncated to one byte, and with 256 units the gate
// columns 0:256, 256:512, … hash alike), so every gate was computed from the
// input gate's weights and the other three quarters were never used or
// trained. Copying the input gate's weights over the others gives an LSTM
// with separate gates that computes exactly what the model computed when it
// was trained, so training can continue from it. Apply it only to such
// models: on any other it overwrites three trained gates.
func UntieGates(m *Model) {
	H := m.Arch.Hidden
	for i, s := range m.Arch.specs() {
		if !strings.HasPrefix(s.Name, "lstm") {
			continue
		}
		t := m.tensors[i]
		rows := len(t) / (4 * H)
		for r := 0; r < rows; r++ {
			row := t[r*4*H : (r+1)*4*H]
			for g := 1; g < 4; g++ {
				copy(row[g*H:(g+1)*H], row[:H])
			}
		}
	}
}
