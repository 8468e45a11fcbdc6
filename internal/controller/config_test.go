package controller

import "sigs.k8s.io/controller-runtime/pkg/config"

// configController lets several managers run one after the other in a test
// process (controller names are otherwise unique per process).
func configController() config.Controller {
	skip := true
	return config.Controller{SkipNameValidation: &skip}
}
