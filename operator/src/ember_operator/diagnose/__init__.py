"""Pure rules from what is observed (a Deployment, a pod, a spec, the
source) to what a status says. No I/O and no clock: each rule has plain unit
tests, and the handlers only gather the inputs and write the result."""
