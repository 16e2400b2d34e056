import MobileSAM
