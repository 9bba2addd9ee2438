# Baton probers: 2 workers spread over the data centers; they split the instances between them by
# shard leases (a dead worker's shards move to the other within a lease TTL).
# Secrets: `nomad var put nomad/jobs/baton-prober mysql_topology_password=...`

variable "image" {
  type    = string
  default = "registry.example.com/baton:0.1.0"
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1", "dc2", "dc3"]
}

job "baton-prober" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel     = 1
    min_healthy_time = "15s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "prober" {
    count = 2

    spread {
      attribute = "${node.datacenter}"
    }

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "prober" {
      driver       = "docker"
      kill_timeout = "30s"

      config {
        image   = var.image
        command = "python"
        args    = ["-m", "services.prober", "--config", "/local/baton.json"]
      }

      env {
        BATON_BatonDataCenter = "${node.datacenter}"
        BATON_BatonNodeName   = "${NOMAD_JOB_NAME}-${NOMAD_ALLOC_INDEX}-${node.unique.name}"
      }

      # NATS servers of every DC, from the Consul catalog (clients then learn the cluster themselves).
      template {
        destination = "local/nats.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          BATON_BatonNatsURLs=%{for dc in var.datacenters}{{ range service "baton-nats@${dc}" }}nats://{{ .Address }}:{{ .Port }},{{ end }}%{endfor}
        EOT
      }

      template {
        destination = "secrets/baton.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/baton-prober" }}
          MYSQL_TOPOLOGY_PASSWORD={{ .mysql_topology_password }}
          {{ end }}
        EOT
      }

      template {
        destination = "local/baton.json"
        change_mode = "restart"
        data        = <<-EOT
          {
            "BatonStreamReplicas": 3,
            "InstancePollSeconds": 5,
            "ReasonableInstanceCheckSeconds": 1,
            "ReasonableReplicationLagSeconds": 10,
            "MySQLTopologyUser": "baton",
            "MySQLTopologyPassword": "$${MYSQL_TOPOLOGY_PASSWORD}",
            "MySQLConnectTimeoutSeconds": 2,
            "DetectDataCenterQuery": "SELECT SUBSTRING_INDEX(SUBSTRING_INDEX(@@hostname, '.', 2), '.', -1)",
            "DiscoverySeeds": []
          }
        EOT
      }

      resources {
        cpu    = 1000
        memory = 256
      }
    }
  }
}
