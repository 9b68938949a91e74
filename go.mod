module github.com/keygate/keygate

go 1.26.0

require (
	github.com/go-chi/chi/v5 v5.5.0
	github.com/gorilla/mux v1.8.1
	go.yaml.in/yaml/v3 v3.0.6
)
