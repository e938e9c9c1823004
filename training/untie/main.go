// Command untie converts the checkpoint of a model trained while the solver's
// LSTM computed every gate from the input gate's weights (see
// solver.UntieGates) into a model file with separate gates that computes
// the same function, ready for `advcaptcha train --init`.
//
//	go run ./training/untie CHECKPOINT OUT.crnn
package main

import (
	"fmt"
	"os"

	"github.com/advcaptcha/advcaptcha/solver"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: untie CHECKPOINT OUT.crnn")
		os.Exit(2)
	}
	m, err := solver.CheckpointModel(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	solver.UntieGates(m)
	m.Info["untied"] = "gates copied from the input gate (solver.UntieGates): trained with tied gates until then"
	if err := m.Save(os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
